#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace oe::erp {

/// How the simulated ERP misbehaves (PUT /_sim/mode). `fail_rate` of ERP calls answer 500;
/// `down` answers every ERP call 503; `latency_ms` delays every ERP call; `reject_rate` of new
/// sales orders are refused (REJECTED); `fault` makes every ERP call misbehave one way:
/// "garbage" (HTML with 200), "partial_json" (a truncated JSON body with 200), "error_body"
/// (200 with {"result":"ERROR"}), "hang" (answers after `hang_ms`), "reset" (drops the
/// connection with a TCP reset). The /_sim routes always work.
struct FakeErpMode {
    double fail_rate = 0;
    std::int64_t latency_ms = 0;
    bool down = false;
    double reject_rate = 0;
    std::string fault;  // Empty: none.
    std::int64_t hang_ms = 30'000;
};

struct FakeErpOptions {
    std::string address = "127.0.0.1";
    std::uint16_t port = 0;  // 0 picks a free port.
    FakeErpMode mode;
    std::string seed_json;          // {"stock":[{"sku","warehouse_id","on_hand"}],"debt":{"P-1":N}}
    std::uint64_t random_seed = 0;  // 0: from the clock.
};

/// The simulated legacy ERP (SPEC §7): a real HTTP server speaking the ERP's wire format
/// (docs/erp-wire-format.md) — sales orders idempotent by our order id, cancels, stock per
/// sku × warehouse, receivables per partner — and the /_sim control surface. Accepting a sales
/// order takes its quantities off the warehouse's stock and adds its total to the partner's
/// debt; cancelling puts both back, as a real ERP's books would.
class FakeErp {
  public:
    /// Throws std::invalid_argument for a malformed seed, std::runtime_error when it cannot
    /// listen.
    explicit FakeErp(FakeErpOptions options);
    ~FakeErp();
    FakeErp(const FakeErp&) = delete;
    FakeErp& operator=(const FakeErp&) = delete;

    /// Binds and starts serving; returns once the port is open.
    void start();
    [[nodiscard]] std::uint16_t port() const;
    /// Closes the listener and every connection; returns once all are gone.
    void stop();

    /// Replaces stock rows / sets a debt, as PUT /_sim/stock and /_sim/debt do.
    void set_stock(const std::string& sku, const std::string& warehouse_id, std::int64_t on_hand);
    void set_debt(const std::string& partner_id, std::int64_t outstanding);

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace oe::erp
