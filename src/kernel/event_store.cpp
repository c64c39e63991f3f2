#include <oe/kernel/event_store.hpp>

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace oe {

namespace {

/// INSERT INTO table (columns) VALUES ($1, …), … for `rows` rows. The last text built is
/// kept per thread: a bulk write asks for the same full-size statement again and again.
const std::string& insert_statement(const std::string& table,
                                    const std::vector<std::string>& columns, std::size_t rows) {
    thread_local std::string key;
    thread_local std::string sql;
    std::string wanted = fmt::format("{}|{}|{}", table, fmt::join(columns, ","), rows);
    if (wanted == key) {
        return sql;
    }
    sql = fmt::format("INSERT INTO {} ({}) VALUES ", table, fmt::join(columns, ", "));
    std::size_t n = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        sql += r == 0 ? "(" : ",(";
        for (std::size_t c = 0; c < columns.size(); ++c) {
            if (c > 0) {
                sql.push_back(',');
            }
            sql += fmt::format("${}", ++n);
        }
        sql += ")";
    }
    key = std::move(wanted);
    return sql;
}

}  // namespace

void SqlTx::insert_rows(const std::string& table, const std::vector<std::string>& columns,
                        const std::vector<SqlValue>& values) {
    const std::size_t width = columns.size();
    if (width == 0 || values.size() % width != 0) {
        throw std::invalid_argument("insert_rows: values do not fill whole rows");
    }
    const std::size_t rows_max =
        std::max<std::size_t>(1, std::min<std::size_t>(500, 30'000 / width));
    const std::size_t rows = values.size() / width;
    for (std::size_t first = 0; first < rows; first += rows_max) {
        insert_slice(table, columns, values.data() + first * width,
                     std::min(rows_max, rows - first));
    }
}

void SqlTx::insert_slice(const std::string& table, const std::vector<std::string>& columns,
                         const SqlValue* values, std::size_t rows) {
    const std::vector<SqlValue> params(values, values + rows * columns.size());
    exec(insert_statement(table, columns, rows), params);
}

namespace {

/// Hands each kept row to `each` as a view (the defaults of the streaming reads).
void each_view(const std::vector<SqlRow>& rows,
               const std::function<void(const SqlTx::RowView&)>& each) {
    SqlTx::RowView view;
    for (const auto& row : rows) {
        view.clear();
        for (const auto& value : row) {
            view.emplace_back(value ? std::optional<std::string_view>(*value) : std::nullopt);
        }
        each(view);
    }
}

}  // namespace

void EventStore::scan(std::string_view sql, const std::vector<SqlValue>& params,
                      const std::function<void(const SqlTx::RowView&)>& each) {
    each_view(query(sql, params), each);
}

void EventStore::after_bulk_load(const std::string& /*table*/) {}

std::function<void(SqlTx&)> EventStore::defer_indexes(SqlTx& /*tx*/,
                                                      const std::vector<std::string>& /*tables*/) {
    return [](SqlTx&) {};
}

void SqlTx::for_each_row(std::string_view sql, const std::vector<SqlValue>& params,
                         const std::function<void(const RowView&)>& each) {
    each_view(query(sql, params), each);
}

CorruptEvent::CorruptEvent(std::int64_t position, const std::string& why)
    : StoreError(fmt::format("event at global position {} is corrupt: {}", position, why)),
      position_(position) {}

}  // namespace oe
