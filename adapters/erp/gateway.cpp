#include <oe/erp/gateway.hpp>

#include <fmt/format.h>

#include <oe/kernel/metrics.hpp>

namespace oe::erp {

using std::chrono::steady_clock;

CircuitBreaker::CircuitBreaker(Options options, Clock clock)
    : options_(options), clock_(std::move(clock)) {}

bool CircuitBreaker::allow() {
    std::lock_guard lock(mutex_);
    if (state_ == State::open && clock_() >= open_until_) {
        state_ = State::half_open;
        probe_in_flight_ = false;
    }
    switch (state_) {
        case State::closed:
            return true;
        case State::open:
            return false;
        case State::half_open:
            if (probe_in_flight_) {
                return false;
            }
            probe_in_flight_ = true;
            return true;
    }
    return false;
}

void CircuitBreaker::succeeded() {
    std::lock_guard lock(mutex_);
    state_ = State::closed;
    consecutive_failures_ = 0;
    probe_in_flight_ = false;
}

void CircuitBreaker::failed() {
    std::lock_guard lock(mutex_);
    ++consecutive_failures_;
    if (state_ == State::half_open || consecutive_failures_ >= options_.failures_to_open) {
        state_ = State::open;
        open_until_ = clock_() + options_.open_for;
    }
    probe_in_flight_ = false;
}

CircuitBreaker::State CircuitBreaker::state() const {
    std::lock_guard lock(mutex_);
    if (state_ == State::open && clock_() >= open_until_) {
        return State::half_open;
    }
    return state_;
}

std::chrono::milliseconds CircuitBreaker::wait() const {
    std::lock_guard lock(mutex_);
    if (state_ != State::open) {
        return std::chrono::milliseconds(0);
    }
    const auto left = open_until_ - clock_();
    return left <= steady_clock::duration::zero()
               ? std::chrono::milliseconds(0)
               : std::chrono::ceil<std::chrono::milliseconds>(left);
}

std::string_view to_string(CircuitBreaker::State state) {
    switch (state) {
        case CircuitBreaker::State::closed:
            return "closed";
        case CircuitBreaker::State::half_open:
            return "half_open";
        case CircuitBreaker::State::open:
            return "open";
    }
    return "closed";
}

CallWindow::CallWindow(std::chrono::seconds span, CircuitBreaker::Clock clock)
    : clock_(std::move(clock)), buckets_(static_cast<std::size_t>(span.count())) {}

std::int64_t CallWindow::now_s() const {
    return std::chrono::duration_cast<std::chrono::seconds>(clock_().time_since_epoch()).count();
}

void CallWindow::record(bool failed) {
    const auto second = now_s();
    std::lock_guard lock(mutex_);
    auto& bucket = buckets_[static_cast<std::size_t>(second) % buckets_.size()];
    if (bucket.second != second) {
        bucket = Bucket{second, 0, 0};
    }
    ++bucket.calls;
    bucket.failures += failed ? 1 : 0;
}

double CallWindow::error_rate() const {
    const auto second = now_s();
    const auto span = static_cast<std::int64_t>(buckets_.size());
    std::lock_guard lock(mutex_);
    std::uint64_t calls = 0;
    std::uint64_t failures = 0;
    for (const auto& bucket : buckets_) {
        if (bucket.second > second - span && bucket.second <= second) {
            calls += bucket.calls;
            failures += bucket.failures;
        }
    }
    return calls == 0 ? 0.0 : static_cast<double>(failures) / static_cast<double>(calls);
}

ErpGateway::ErpGateway(std::unique_ptr<ErpPort> inner, CircuitBreaker::Options breaker,
                       metrics::Registry& metrics)
    : inner_(std::move(inner)),
      breaker_(breaker),
      metrics_(metrics),
      attempts_(
          metrics.counter("erp_sync_attempts_total",
                          "ERP calls made (order deliveries, cancels, stock and debt pulls)")),
      errors_(
          metrics.counter("erp_sync_errors_total", "ERP calls that failed (no usable answer)")) {
    metrics.gauge_callback("erp_sync_error_rate",
                           "Failed ERP calls / all ERP calls over the last 5 minutes (0 when none)",
                           {}, [this] { return window_.error_rate(); });
    metrics.gauge_callback("erp_circuit_state",
                           "ERP circuit breaker: 0 closed, 1 half-open (probing), 2 open", {},
                           [this] { return static_cast<double>(breaker_.state()); });
}

template <typename Call>
auto ErpGateway::guarded(std::string_view call, Call&& body) -> decltype(body()) {
    if (!breaker_.allow()) {
        throw ErpFailure(ErpFailure::Kind::circuit_open,
                         fmt::format("circuit open: the ERP is not called for another {} ms",
                                     breaker_.wait().count()));
    }
    attempts_.inc();
    const auto started = steady_clock::now();
    auto& duration = metrics_.histogram("erp_call_duration_seconds", "ERP call duration by call",
                                        {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
                                        {{"call", std::string(call)}});
    try {
        auto result = body();
        duration.observe(std::chrono::duration<double>(steady_clock::now() - started).count());
        window_.record(false);
        breaker_.succeeded();
        return result;
    } catch (const ErpFailure&) {
        duration.observe(std::chrono::duration<double>(steady_clock::now() - started).count());
        errors_.inc();
        window_.record(true);
        breaker_.failed();
        throw;
    } catch (const std::exception& e) {
        // Anything else from the wire side is a failed call too, never a crash of the caller.
        errors_.inc();
        window_.record(true);
        breaker_.failed();
        throw ErpFailure(ErpFailure::Kind::failed, fmt::format("ERP call failed: {}", e.what()));
    }
}

StockReport ErpGateway::pull_stock(const std::string& trace_id) {
    return guarded("stock", [&] { return inner_->pull_stock(trace_id); });
}

DebtReport ErpGateway::pull_debt(const std::string& trace_id) {
    return guarded("debt", [&] { return inner_->pull_debt(trace_id); });
}

SalesOrderAnswer ErpGateway::create_sales_order(const SalesOrder& order,
                                                const std::string& trace_id) {
    return guarded("create", [&] { return inner_->create_sales_order(order, trace_id); });
}

void ErpGateway::cancel_sales_order(const std::string& order_id, const std::string& trace_id) {
    guarded("cancel", [&] {
        inner_->cancel_sales_order(order_id, trace_id);
        return 0;
    });
}

}  // namespace oe::erp
