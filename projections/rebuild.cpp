#include <oe/projections/rebuild.hpp>

#include <algorithm>
#include <chrono>
#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <oe/kernel/log.hpp>
#include <oe/kernel/time.hpp>
#include <oe/model/commerce_state.hpp>
#include <oe/projections/projection.hpp>

namespace oe::projections {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t read_batch = 10'000;
constexpr std::string_view shadow_suffix = "_rebuild";
constexpr std::chrono::seconds live_wait{3};
constexpr std::chrono::milliseconds live_still{300};

/// The sum (mod 2^64) of each row's FNV-1a hash: independent of row order, so neither a sort
/// nor a collation can change it; values are separated and NULL is distinct from every text.
std::pair<std::string, std::int64_t> checksum(SqlTx& tx, const std::string& table) {
    const auto rows = tx.query("SELECT * FROM " + table);
    std::uint64_t sum = 0;
    for (const auto& row : rows) {
        std::uint64_t hash = 14695981039346656037ULL;
        const auto mix = [&hash](unsigned char c) { hash = (hash ^ c) * 1099511628211ULL; };
        for (const auto& value : row) {
            if (value) {
                for (const char c : *value) {
                    mix(static_cast<unsigned char>(c));
                }
                mix(0x1F);
            } else {
                mix(0x00);
                mix(0x1F);
            }
        }
        sum += hash;
    }
    return {fmt::format("fnv1a64-sum:{:016x}", sum), static_cast<std::int64_t>(rows.size())};
}

/// Runs a bulk write as a series of short transactions of `statements_per_tx` statements
/// each, so another writer (checkout, on SQLite's single write lock) gets its turn between
/// them. Only for writers that never read.
class ChunkedTx final : public SqlTx {
  public:
    ChunkedTx(EventStore& store, std::size_t per_tx) : store_(store), per_tx_(per_tx) {}

    void exec(std::string_view sql, const std::vector<SqlValue>& params) override {
        statements_.emplace_back(std::string(sql), params);
        if (statements_.size() >= per_tx_) {
            flush();
        }
    }
    std::vector<SqlRow> query(std::string_view, const std::vector<SqlValue>&) override {
        throw StoreError("a bulk write must not read");
    }
    void flush() {
        if (statements_.empty()) {
            return;
        }
        store_.commit_projections({}, [&](SqlTx& tx) {
            for (const auto& [sql, params] : statements_) {
                tx.exec(sql, params);
            }
        });
        statements_.clear();
    }

  private:
    EventStore& store_;
    std::size_t per_tx_;
    std::vector<std::pair<std::string, std::vector<SqlValue>>> statements_;
};

/// Statements per shadow-write transaction: ~5,000 rows, a few tens of milliseconds.
constexpr std::size_t statements_per_tx = 10;

std::vector<std::unique_ptr<Projection>> chosen(std::string_view suffix,
                                                const std::vector<std::string>& names) {
    auto all = make_read_models(suffix);
    std::vector<std::unique_ptr<Projection>> out;
    for (auto& p : all) {
        if (std::find(names.begin(), names.end(), p->name()) != names.end()) {
            out.push_back(std::move(p));
        }
    }
    return out;
}

}  // namespace

std::vector<std::string> projection_names() {
    std::vector<std::string> names;
    for (const auto& p : make_read_models()) {
        names.emplace_back(p->name());
    }
    return names;
}

RebuildStatus rebuild(EventStore& store, std::vector<std::string> names,
                      const std::function<void(const RebuildStatus&)>& progress,
                      const std::atomic<bool>* cancel) {
    const auto check_cancel = [cancel] {
        if (cancel != nullptr && cancel->load()) {
            throw StoreError("cancelled");
        }
    };
    const auto known = projection_names();
    if (names.empty()) {
        names = known;
    }
    std::set<std::string> seen;
    for (const auto& name : names) {
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            throw std::invalid_argument(
                fmt::format("unknown projection '{}' (known: {})", name, fmt::join(known, ", ")));
        }
        if (!seen.insert(name).second) {
            throw std::invalid_argument(fmt::format("projection '{}' named twice", name));
        }
    }
    RebuildStatus status;
    status.started_at_us = now_us();
    status.job_id = fmt::format("rebuild-{}", status.started_at_us);
    status.projections = names;
    status.state = "running";
    const auto report = [&] {
        if (progress) {
            progress(status);
        }
    };
    auto shadows = chosen(shadow_suffix, names);
    std::vector<std::string> live_tables;
    for (const auto& p : shadows) {
        for (const auto& table : p->tables()) {
            live_tables.push_back(table);
        }
    }

    // 1. Empty shadow tables (a rebuild that died midway may have left rows behind).
    store.commit_projections({}, [&](SqlTx& tx) {
        for (const auto& table : live_tables) {
            tx.exec("DELETE FROM " + table + std::string(shadow_suffix));
        }
    });

    // 2. Fold the whole log, as it is now, into a fresh write model.
    model::CommerceState state;
    const auto started = Clock::now();
    status.target = store.head_position();
    report();
    auto last_report = Clock::now();
    while (status.position < status.target) {
        const auto events = store.read_all(status.position, read_batch);
        if (events.empty()) {
            break;
        }
        for (const auto& e : events) {
            state.apply(e);
        }
        status.position = events.back().global_position;
        check_cancel();
        const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
        status.events_per_s =
            seconds > 0 ? static_cast<std::int64_t>(static_cast<double>(status.position) / seconds)
                        : 0;
        status.eta_ms = status.events_per_s > 0
                            ? (status.target - status.position) * 1000 / status.events_per_s
                            : 0;
        if (Clock::now() - last_report > std::chrono::milliseconds(250)) {
            report();
            last_report = Clock::now();
        }
    }
    status.eta_ms = 0;
    const auto ms_since = [](Clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
    };
    status.fold_ms = ms_since(started);
    report();

    // 3. Every row, in bulk, into the shadow tables.
    const auto write_started = Clock::now();
    // Short transactions matter on SQLite (one write lock, shared with checkout); PostgreSQL's
    // shadow writes block nobody, so one transaction saves the commits.
    ChunkedTx chunked(store, store.backend_name() == "sqlite" ? statements_per_tx : SIZE_MAX);
    for (const auto& p : shadows) {
        check_cancel();
        p->write_all(chunked, state);
    }
    chunked.flush();
    status.write_ms = ms_since(write_started);

    // 4. Catch up with the live projector and swap, with the live checkpoints locked (their
    //    projector's next commit waits for this transaction), so the swap cannot race it.
    status.state = "swapping";
    report();
    const auto swap_started = Clock::now();
    const bool rename_swap = store.backend_name() == "sqlite";
    std::vector<std::string> names_in_order;
    for (const auto& p : shadows) {
        names_in_order.emplace_back(p->name());
    }
    // A live projector behind the rebuild gets a moment to pass it, so the checksums compare
    // like for like; one that does not move (none running: `orderengine rebuild` with no
    // server) is carried forward by the swap.
    const auto behind_since = Clock::now();
    std::int64_t last_seen = -1;
    auto still_since = Clock::now();
    while (Clock::now() - behind_since < live_wait) {
        check_cancel();
        std::int64_t furthest = 0;
        for (const auto& name : names_in_order) {
            furthest = std::max(furthest, store.load_checkpoint(name));
        }
        if (furthest >= status.position) {
            break;
        }
        if (furthest != last_seen) {
            last_seen = furthest;
            still_since = Clock::now();
        } else if (Clock::now() - still_since > live_still) {
            break;  // Nobody is moving it.
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    check_cancel();
    std::vector<RebuildStatus::Checksum> sums;
    std::int64_t swapped_at = 0;
    store.with_checkpoints_locked(names_in_order, [&](const std::vector<std::int64_t>& live,
                                                      SqlTx& tx) {
        sums.clear();
        const auto target = std::max(*std::max_element(live.begin(), live.end()), status.position);
        // What checkout appended since the fold, into the shadow tables.
        std::int64_t at = status.position;
        while (at < target) {
            const auto events = store.read_all(
                at, std::min<std::size_t>(read_batch, static_cast<std::size_t>(target - at)));
            if (events.empty()) {
                throw StoreError("the log ended before the live checkpoint");
            }
            for (const auto& e : events) {
                state.apply(e);
                auto decoded = events::decode(e);
                if (decoded.ok()) {
                    for (const auto& p : shadows) {
                        p->observe(e, decoded.value(), state);
                    }
                }
                at = e.global_position;
            }
        }
        for (const auto& p : shadows) {
            p->flush(tx, state);
        }
        status.position = at;
        for (std::size_t i = 0; i < shadows.size(); ++i) {
            for (const auto& table : shadows[i]->tables()) {
                const std::string shadow = table + std::string(shadow_suffix);
                const auto live_sum = checksum(tx, table).first;
                const auto [new_sum, new_rows] = checksum(tx, shadow);
                sums.push_back({table, live_sum, new_sum, new_rows, live[i]});
                if (rename_swap) {
                    // SQLite: DDL is transactional and O(1); the old rows end up in the
                    // shadow table, emptied after the swap.
                    tx.exec("ALTER TABLE " + table + " RENAME TO " + table + "_swap");
                    tx.exec("ALTER TABLE " + shadow + " RENAME TO " + table);
                    tx.exec("ALTER TABLE " + table + "_swap RENAME TO " + shadow);
                } else {
                    // PostgreSQL: renaming needs the tables' owner, which the application
                    // role need not be; copying needs only the grants it has.
                    tx.exec("DELETE FROM " + table);
                    tx.exec("INSERT INTO " + table + " SELECT * FROM " + shadow);
                    tx.exec("DELETE FROM " + shadow);
                }
            }
        }
        swapped_at = target;
        return std::vector<std::int64_t>(live.size(), target);
    });
    status.checksums = std::move(sums);
    status.swapped_at = swapped_at;
    status.swap_ms = ms_since(swap_started);
    if (rename_swap) {
        // The replaced rows, now in the shadow tables, go in short transactions too.
        for (const auto& table : live_tables) {
            const std::string shadow = table + std::string(shadow_suffix);
            for (;;) {
                bool more = false;
                store.commit_projections({}, [&](SqlTx& tx) {
                    tx.exec("DELETE FROM " + shadow + " WHERE rowid IN (SELECT rowid FROM " +
                            shadow + " LIMIT 5000)");
                    more = !tx.query("SELECT 1 FROM " + shadow + " LIMIT 1").empty();
                });
                if (!more) {
                    break;
                }
            }
        }
    }
    status.state = "done";
    status.target = status.swapped_at;
    status.finished_at_us = now_us();
    report();
    return status;
}

RebuildJobs::RebuildJobs(EventStore& store) : store_(store) {}

RebuildJobs::~RebuildJobs() {
    stop();
}

std::optional<RebuildStatus> RebuildJobs::start(const std::vector<std::string>& names,
                                                RebuildStatus* running) {
    const auto known = projection_names();
    for (const auto& name : names) {
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            throw std::invalid_argument(fmt::format("unknown projection '{}'", name));
        }
    }
    std::lock_guard lock(mutex_);
    if (running_) {
        if (running != nullptr && latest_) {
            *running = *latest_;
        }
        return std::nullopt;
    }
    auto lease = store_.try_lease("rebuild");
    if (!lease) {
        if (running != nullptr) {
            running->state = "running";
            running->error = "a rebuild is running in another process";
        }
        return std::nullopt;
    }
    if (thread_.joinable()) {
        thread_.join();
    }
    RebuildStatus first;
    first.started_at_us = now_us();
    first.job_id = fmt::format("rebuild-{}", first.started_at_us);
    first.projections = names.empty() ? known : names;
    first.state = "running";
    latest_ = first;
    running_ = true;
    cancel_ = false;
    thread_ = std::thread(
        [this, names, lease = std::shared_ptr<Lease>(std::move(lease)), job_id = first.job_id] {
            try {
                auto done = rebuild(store_, names, [&](const RebuildStatus& s) {
                    std::lock_guard guard(mutex_);
                    latest_ = s;
                    latest_->job_id = job_id;
                });
                log(LogLevel::info, "rebuild done",
                    {{"job_id", job_id}, {"swapped_at", std::to_string(done.swapped_at)}});
            } catch (const std::exception& e) {
                std::lock_guard guard(mutex_);
                latest_->state = "failed";
                latest_->error = e.what();
                latest_->finished_at_us = now_us();
                log(LogLevel::error, "rebuild failed; the live read models are untouched",
                    {{"job_id", job_id}, {"error", e.what()}});
            }
            std::lock_guard guard(mutex_);
            running_ = false;
        });
    return first;
}

std::optional<RebuildStatus> RebuildJobs::latest() const {
    std::lock_guard lock(mutex_);
    return latest_;
}

void RebuildJobs::stop() {
    cancel_ = true;
    std::thread done;
    {
        std::lock_guard lock(mutex_);
        done = std::move(thread_);
    }
    if (done.joinable()) {
        done.join();
    }
}

}  // namespace oe::projections
