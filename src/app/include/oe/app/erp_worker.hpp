#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace oe {
class EventStore;
namespace metrics {
class Registry;
}
namespace commands {
class CommandService;
}
namespace erp {
class ErpGateway;
}
}  // namespace oe

namespace oe::app {

struct ErpWorkerOptions {
    std::chrono::milliseconds retry_base{500};     // First backoff; doubles per failure.
    std::chrono::milliseconds retry_cap{30'000};   // Longest backoff.
    int dead_letter_after = 10;                    // Failed attempts of one delivery.
    std::chrono::milliseconds lease_retry{2'000};  // How often a standby asks for the lease.
    /// Fault injection for the exactly-once test: exit the process right after the ERP
    /// accepted an order, before anything is recorded (OE_FAILPOINT=erp_after_answer).
    bool crash_after_erp_answer = false;
};

/// The outcome of one stock + debt sync.
struct ErpSyncResult {
    bool stock_changed = false;
    bool debt_changed = false;
    std::size_t refused = 0;  // Figures the ACL refused (unknown sku, negative debt, …).
};

struct ErpDeadLetterView {
    std::int64_t id = 0;
    std::string order_id;
    std::string action;
    std::int64_t attempts = 0;
    std::string last_error;
    std::int64_t parked_at_us = 0;
    bool retry_requested = false;
};

struct ErpStatus {
    bool leader = false;  // This instance runs the ERP projector and the sync.
    std::string circuit_state;
    std::int64_t checkpoint = 0;
    std::int64_t outbox_pending = 0;  // Deliveries waiting (queued, parked and behind parked).
    std::int64_t max_rps_hundredths = 0;
    double error_rate = 0;
    std::uint64_t delivered = 0;  // By this instance since it started.
    struct LastSync {
        std::int64_t at_us = 0;
        bool ok = false;
        ErpSyncResult result;
        std::string error;
    };
    std::optional<LastSync> last_sync;
    std::vector<ErpDeadLetterView> dead_letters;
};

/// The ERP projector and the stock/debt sync (SPEC §7), one instance at a time (the store's
/// lease "erp"). The projector drains order events one at a time in global order — a create for
/// every OrderRouted (placed and not held, or released), a cancel for every OrderCancelled of
/// an order already sent — at most `erp.max_rps` calls per second, recording OrderSentToErp
/// before the call and OrderAcceptedByErp / OrderRejectedByErp after it, and moving its
/// checkpoint after each delivery. Failures back off exponentially with jitter behind the
/// ACL's circuit breaker; a delivery that fails `dead_letter_after` times (the ERP answered
/// but unusably) is parked and later deliveries of its order wait behind it.
class ErpWorker {
  public:
    using ConfigReader = std::function<std::int64_t(std::string_view key)>;

    ErpWorker(EventStore& store, commands::CommandService& commands, erp::ErpGateway& gateway,
              ConfigReader config, metrics::Registry& metrics, ErpWorkerOptions options = {});
    ~ErpWorker();
    ErpWorker(const ErpWorker&) = delete;
    ErpWorker& operator=(const ErpWorker&) = delete;

    void start();
    /// Stops both loops; a delivery in flight finishes its call first (bounded by the ERP
    /// client's timeout).
    void stop();

    /// Pulls stock and debt now and records what changed. Throws erp::ErpFailure when the ERP
    /// cannot be asked (nothing is recorded then: the last synced values keep serving).
    ErpSyncResult sync_now(const std::string& trace_id);

    [[nodiscard]] ErpStatus status();

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace oe::app
