#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace oe::events {

/// The ERP projector's dead letters (SPEC §7), in the stream "erp-dead-letters". A dead
/// letter is named by the global position of the order event whose delivery failed, so its
/// id is stable, unique and tells where in the log it came from.

/// What the ERP projector delivers for an order event.
enum class ErpAction : std::uint8_t {
    create,  // Send the sales order (OrderRouted: placed and not held, or released).
    cancel,  // Tell the ERP the order was cancelled (OrderCancelled after it was sent).
};
[[nodiscard]] std::string_view to_string(ErpAction action);
[[nodiscard]] std::optional<ErpAction> parse_erp_action(std::string_view text);

/// A delivery failed too many times and was parked; the queue moved on, but later deliveries
/// of the same order wait behind it.
struct ErpDeliveryParked {
    static constexpr std::string_view type_name = "ErpDeliveryParked";
    static constexpr std::uint16_t schema_version = 1;

    std::int64_t dead_letter_id = 0;  // >= 1: global position of the order event.
    std::string order_id;
    ErpAction action = ErpAction::create;
    std::int64_t attempts = 0;  // >= 1.
    std::string last_error;

    bool operator==(const ErpDeliveryParked&) const = default;
};

/// Someone asked for a parked delivery to be tried again.
struct ErpDeliveryRetryRequested {
    static constexpr std::string_view type_name = "ErpDeliveryRetryRequested";
    static constexpr std::uint16_t schema_version = 1;

    std::int64_t dead_letter_id = 0;  // >= 1.
    std::string requested_by;

    bool operator==(const ErpDeliveryRetryRequested&) const = default;
};

/// A parked delivery, and every later delivery of its order that waited behind it, went
/// through after a retry: the dead letter is closed.
struct ErpDeliveryResolved {
    static constexpr std::string_view type_name = "ErpDeliveryResolved";
    static constexpr std::uint16_t schema_version = 1;

    std::int64_t dead_letter_id = 0;  // >= 1.

    bool operator==(const ErpDeliveryResolved&) const = default;
};

/// Canonical JSON of each event (see partner.hpp).
[[nodiscard]] std::string to_json(const ErpDeliveryParked& event);
[[nodiscard]] std::string to_json(const ErpDeliveryRetryRequested& event);
[[nodiscard]] std::string to_json(const ErpDeliveryResolved& event);

}  // namespace oe::events
