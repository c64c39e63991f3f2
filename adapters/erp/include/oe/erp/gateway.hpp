#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include <oe/erp/erp_port.hpp>

namespace oe::metrics {
class Registry;
class Counter;
class Histogram;
}  // namespace oe::metrics

namespace oe::erp {

/// Closed → open after `failures_to_open` consecutive failures → half-open once `open_for`
/// has passed: one probe call goes out; its success closes the circuit, its failure opens it
/// again (SPEC §7: 5 failures, 30 s). Thread-safe.
class CircuitBreaker {
  public:
    enum class State { closed = 0, half_open = 1, open = 2 };
    struct Options {
        int failures_to_open = 5;
        std::chrono::milliseconds open_for{30'000};
    };
    using Clock = std::function<std::chrono::steady_clock::time_point()>;

    explicit CircuitBreaker(Options options, Clock clock = std::chrono::steady_clock::now);

    /// May a call go out now? In half-open only one probe may be in flight.
    [[nodiscard]] bool allow();
    void succeeded();
    void failed();
    [[nodiscard]] State state() const;
    /// How long until allow() can say yes (zero when it can now).
    [[nodiscard]] std::chrono::milliseconds wait() const;

  private:
    Options options_;
    Clock clock_;
    mutable std::mutex mutex_;
    State state_ = State::closed;
    int consecutive_failures_ = 0;
    bool probe_in_flight_ = false;
    std::chrono::steady_clock::time_point open_until_{};
};

[[nodiscard]] std::string_view to_string(CircuitBreaker::State state);

/// Successes and failures per second over a sliding window (SPEC §8's erp_sync_error_rate is
/// failed / all ERP calls over the last 5 minutes). Thread-safe.
class CallWindow {
  public:
    explicit CallWindow(std::chrono::seconds span = std::chrono::seconds(300),
                        CircuitBreaker::Clock clock = std::chrono::steady_clock::now);
    void record(bool failed);
    /// failed / all over the window; 0 when there were no calls.
    [[nodiscard]] double error_rate() const;

  private:
    struct Bucket {
        std::int64_t second = -1;
        std::uint64_t calls = 0;
        std::uint64_t failures = 0;
    };
    [[nodiscard]] std::int64_t now_s() const;

    CircuitBreaker::Clock clock_;
    mutable std::mutex mutex_;
    std::vector<Bucket> buckets_;
};

/// The ACL's guard around the ERP: every call passes the circuit breaker (an open circuit
/// fails fast with ErpFailure(unavailable) and no network traffic), is counted
/// (erp_sync_attempts_total, erp_sync_errors_total, erp_sync_error_rate, erp_circuit_state,
/// erp_call_duration_seconds) and timed. A business refusal (REJECTED) is a successful call.
class ErpGateway final : public ErpPort {
  public:
    ErpGateway(std::unique_ptr<ErpPort> inner, CircuitBreaker::Options breaker,
               metrics::Registry& metrics);

    StockReport pull_stock(const std::string& trace_id) override;
    DebtReport pull_debt(const std::string& trace_id) override;
    SalesOrderAnswer create_sales_order(const SalesOrder& order,
                                        const std::string& trace_id) override;
    void cancel_sales_order(const std::string& order_id, const std::string& trace_id) override;

    [[nodiscard]] CircuitBreaker& breaker() { return breaker_; }
    [[nodiscard]] double error_rate() const { return window_.error_rate(); }

  private:
    template <typename Call>
    auto guarded(std::string_view call, Call&& body) -> decltype(body());

    std::unique_ptr<ErpPort> inner_;
    CircuitBreaker breaker_;
    CallWindow window_;
    metrics::Registry& metrics_;
    metrics::Counter& attempts_;
    metrics::Counter& errors_;
};

}  // namespace oe::erp
