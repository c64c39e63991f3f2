#include <oe/kernel/metrics.hpp>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include <oe/kernel/invariant.hpp>

namespace oe::metrics {

namespace {

void add(std::atomic<double>& target, double value) noexcept {
    double current = target.load(std::memory_order_relaxed);
    while (!target.compare_exchange_weak(current, current + value, std::memory_order_relaxed)) {
    }
}

std::string number(double value) {
    if (std::isinf(value)) {
        return value > 0 ? "+Inf" : "-Inf";
    }
    if (std::isnan(value)) {
        return "NaN";
    }
    return fmt::format("{}", value);
}

/// Labels plus one more (le for histogram buckets).
std::string with_label(const std::string& rendered, std::string_view name, std::string_view value) {
    const std::string extra = fmt::format("{}=\"{}\"", name, value);
    if (rendered.empty()) {
        return "{" + extra + "}";
    }
    return rendered.substr(0, rendered.size() - 1) + "," + extra + "}";
}

}  // namespace

std::string render_labels(const Labels& labels) {
    if (labels.empty()) {
        return {};
    }
    std::string out = "{";
    for (std::size_t i = 0; i < labels.size(); ++i) {
        if (i > 0) {
            out.push_back(',');
        }
        out += labels[i].first;
        out += "=\"";
        for (const char c : labels[i].second) {
            if (c == '\\' || c == '"') {
                out.push_back('\\');
                out.push_back(c);
            } else if (c == '\n') {
                out += "\\n";
            } else {
                out.push_back(c);
            }
        }
        out.push_back('"');
    }
    out.push_back('}');
    return out;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {
    OE_INVARIANT(std::is_sorted(bounds_.begin(), bounds_.end()), "bucket bounds ascend");
}

void Histogram::observe(double value) noexcept {
    const auto bucket = static_cast<std::size_t>(
        std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
    buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
    add(sum_, value);
    count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
    Snapshot s;
    s.bounds = bounds_;
    std::uint64_t running = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        running += buckets_[i].load(std::memory_order_relaxed);
        s.cumulative.push_back(running);
    }
    s.sum = sum_.load(std::memory_order_relaxed);
    s.count = running;  // Consistent with the buckets, even while observations race.
    return s;
}

Registry::Family& Registry::family(std::string_view name, std::string_view help, Type type) {
    for (auto& f : families_) {
        if (f->name == name) {
            OE_INVARIANT(f->type == type, "a metric name has one type");
            return *f;
        }
    }
    auto f = std::make_unique<Family>();
    f->name = std::string(name);
    f->help = std::string(help);
    f->type = type;
    families_.push_back(std::move(f));
    return *families_.back();
}

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
    OE_INVARIANT(name.ends_with("_total"), "counter names end in _total");
    std::lock_guard lock(mutex_);
    auto& slot = family(name, help, Type::counter).counters[render_labels(labels)];
    if (!slot) {
        slot = std::make_unique<Counter>();
    }
    return *slot;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
    std::lock_guard lock(mutex_);
    auto& slot = family(name, help, Type::gauge).gauges[render_labels(labels)];
    if (!slot) {
        slot = std::make_unique<Gauge>();
    }
    return *slot;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help,
                               const std::vector<double>& bounds, const Labels& labels) {
    std::lock_guard lock(mutex_);
    auto& f = family(name, help, Type::histogram);
    if (f.bounds.empty()) {
        f.bounds = bounds;
    }
    auto& slot = f.histograms[render_labels(labels)];
    if (!slot) {
        slot = std::make_unique<Histogram>(f.bounds);
    }
    return *slot;
}

void Registry::gauge_callback(std::string_view name, std::string_view help, const Labels& labels,
                              std::function<double()> read) {
    std::lock_guard lock(mutex_);
    family(name, help, Type::gauge).callbacks[render_labels(labels)] = std::move(read);
}

std::string Registry::render() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& f : families_) {
        const char* type = f->type == Type::counter ? "counter"
                           : f->type == Type::gauge ? "gauge"
                                                    : "histogram";
        // Text format 0.0.4: HELP and TYPE name the samples exactly, _total included
        // (promtool reads a base name as a different, undocumented family).
        out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f->name, f->help, f->name, type);
        for (const auto& [labels, c] : f->counters) {
            out += fmt::format("{}{} {}\n", f->name, labels, c->value());
        }
        for (const auto& [labels, g] : f->gauges) {
            out += fmt::format("{}{} {}\n", f->name, labels, number(g->value()));
        }
        for (const auto& [labels, read] : f->callbacks) {
            double value = 0;
            try {
                value = read();
            } catch (const std::exception&) {
                value = std::nan("");  // A failed read shows as NaN, never fails the scrape.
            }
            out += fmt::format("{}{} {}\n", f->name, labels, number(value));
        }
        for (const auto& [labels, h] : f->histograms) {
            const auto s = h->snapshot();
            for (std::size_t i = 0; i < s.bounds.size(); ++i) {
                out += fmt::format("{}_bucket{} {}\n", f->name,
                                   with_label(labels, "le", number(s.bounds[i])), s.cumulative[i]);
            }
            out += fmt::format("{}_bucket{} {}\n", f->name, with_label(labels, "le", "+Inf"),
                               s.cumulative.back());
            out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", f->name, labels, number(s.sum),
                               f->name, labels, s.count);
        }
    }
    return out;
}

}  // namespace oe::metrics
