#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <memory>

#include <oe/kernel/event.hpp>
#include <oe/kernel/result.hpp>
#include <oe/kernel/upcaster.hpp>

#include <oe/events/catalog.hpp>
#include <oe/events/config.hpp>
#include <oe/events/erp.hpp>
#include <oe/events/order.hpp>
#include <oe/events/order_status.hpp>
#include <oe/events/partner.hpp>
#include <oe/events/stock.hpp>
#include <oe/events/streams.hpp>
#include <oe/events/tier.hpp>

namespace oe::events {

/// Every event of the published language. New types go at the end.
using DomainEvent =
    std::variant<PartnerRegistered, PartnerDetailsChanged, PartnerTierChanged, CreditLimitSet,
                 ProductRegistered, ProductPriceChanged, WarehouseRegistered, TierConfigChanged,
                 SystemConfigChanged, SystemConfigReset, StockLevelsSynced, PartnerDebtSynced,
                 OrderPlaced, OrderCreditHeld, OrderCreditReleased, OrderRouted, OrderCancelled,
                 OrderSentToErp, OrderAcceptedByErp, OrderRejectedByErp, ErpDeliveryParked,
                 ErpDeliveryRetryRequested, ErpDeliveryResolved>;

/// Why stored data is not a known event: an unknown type or schema version, data that is not
/// a JSON object, or a field that is missing, of the wrong type or out of range. The message
/// names the event type and the field ("OrderPlaced: field 'lines[1].qty' must be >= 0").
struct DecodeError {
    std::string message;
};

/// The event's type name, e.g. "OrderPlaced".
[[nodiscard]] std::string_view type_name_of(const DomainEvent& event);

/// Canonical JSON of whichever event `event` holds (see partner.hpp).
[[nodiscard]] std::string to_json(const DomainEvent& event);

/// The event ready to append: type, schema_version and canonical data. Metadata is left
/// default; the caller fills it. A field outside its documented range is a bug (invariant).
[[nodiscard]] oe::NewEvent encode(const DomainEvent& event);

/// Reads stored event data (already upcast to the current schema_version). Fields the type
/// does not know are ignored, so older readers survive newer writers. Never throws: any input,
/// however hostile, gives either an event or a DecodeError.
[[nodiscard]] oe::Result<DomainEvent, DecodeError> decode(std::string_view type,
                                                          std::uint16_t schema_version,
                                                          std::string_view data);

/// Every upcaster of the published language (old event shapes lifted to the current ones on
/// read). Stores are opened with it (app::open_store).
[[nodiscard]] std::shared_ptr<const UpcasterRegistry> published_upcasters();

/// decode(event.type, event.schema_version, event.data).
[[nodiscard]] oe::Result<DomainEvent, DecodeError> decode(const oe::RecordedEvent& event);

namespace detail {
/// How decode reads: `exact_first` (what decode does) tries a reader of exactly the JSON
/// encode writes before the general JSON reader; `general_only` skips it, `exact_only` gives
/// an error where it would be needed. The first two must give the same result for any
/// input; tests compare them.
enum class DecodePath { exact_first, general_only, exact_only };
[[nodiscard]] oe::Result<DomainEvent, DecodeError> decode(std::string_view type,
                                                          std::uint16_t schema_version,
                                                          std::string_view data, DecodePath path);
}  // namespace detail

}  // namespace oe::events
