#include <oe/events/erp.hpp>

#include <oe/kernel/invariant.hpp>

namespace oe::events {

std::string_view to_string(ErpAction action) {
    switch (action) {
        case ErpAction::create:
            return "create";
        case ErpAction::cancel:
            return "cancel";
    }
    OE_INVARIANT(false, "ErpAction value outside the enum");
    return {};
}

std::optional<ErpAction> parse_erp_action(std::string_view text) {
    if (text == "create") {
        return ErpAction::create;
    }
    if (text == "cancel") {
        return ErpAction::cancel;
    }
    return std::nullopt;
}

}  // namespace oe::events
