#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace oe::metrics {

/// Label name/value pairs, in the order given.
using Labels = std::vector<std::pair<std::string, std::string>>;

/// A monotonically increasing count. Lock-free.
class Counter {
  public:
    void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    [[nodiscard]] std::uint64_t value() const noexcept {
        return value_.load(std::memory_order_relaxed);
    }

  private:
    std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down. Lock-free.
class Gauge {
  public:
    void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
    [[nodiscard]] double value() const noexcept { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<double> value_{0};
};

/// Observations in fixed buckets (upper bounds, ascending; +Inf is implied).
class Histogram {
  public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double value) noexcept;

    struct Snapshot {
        std::vector<double> bounds;
        std::vector<std::uint64_t> cumulative;  // One per bound, then +Inf.
        double sum = 0;
        std::uint64_t count = 0;
    };
    [[nodiscard]] Snapshot snapshot() const;

  private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // Non-cumulative, +Inf last.
    std::atomic<double> sum_{0};
    std::atomic<std::uint64_t> count_{0};
};

/// Named metric families with labelled children, rendered in the Prometheus text format.
/// Look a child up once (at start-up or per distinct label set) and keep the reference: the
/// hot path then touches one atomic.
class Registry {
  public:
    /// `name` must end in _total (Prometheus convention for counters).
    Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
    Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
    Histogram& histogram(std::string_view name, std::string_view help,
                         const std::vector<double>& bounds, const Labels& labels = {});
    /// A gauge whose value is computed at each scrape (queue depths, lags).
    void gauge_callback(std::string_view name, std::string_view help, const Labels& labels,
                        std::function<double()> read);

    /// Every family, in registration order.
    [[nodiscard]] std::string render() const;

  private:
    enum class Type { counter, gauge, histogram };
    struct Family {
        std::string name;
        std::string help;
        Type type = Type::counter;
        std::vector<double> bounds;
        std::map<std::string, std::unique_ptr<Counter>> counters;  // By rendered label set.
        std::map<std::string, std::unique_ptr<Gauge>> gauges;
        std::map<std::string, std::unique_ptr<Histogram>> histograms;
        std::map<std::string, std::function<double()>> callbacks;
    };
    Family& family(std::string_view name, std::string_view help, Type type);

    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<Family>> families_;
};

/// `{a="x",b="y"}` with values escaped as the text format requires; empty for no labels.
[[nodiscard]] std::string render_labels(const Labels& labels);

}  // namespace oe::metrics
