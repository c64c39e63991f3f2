#include <oe/kernel/upcaster.hpp>

#include <oe/kernel/event_store.hpp>
#include <oe/kernel/json_text.hpp>

namespace oe {

void UpcasterRegistry::add(std::string type, std::uint16_t from_version, Upcast upcast) {
    steps_[{std::move(type), from_version}] = std::move(upcast);
}

void UpcasterRegistry::upcast(RecordedEvent& event) const {
    if (steps_.empty()) {
        return;
    }
    for (;;) {
        const auto step = steps_.find(std::make_pair(event.type, event.schema_version));
        if (step == steps_.end()) {
            return;
        }
        std::string lifted;
        try {
            lifted = step->second(event.data);
        } catch (const std::exception& e) {
            throw CorruptEvent(event.global_position, "upcast of " + event.type + " v" +
                                                          std::to_string(event.schema_version) +
                                                          " failed: " + e.what());
        }
        if (!is_json_object(lifted)) {
            throw CorruptEvent(event.global_position,
                               "upcast of " + event.type + " did not produce a JSON object");
        }
        event.data = std::move(lifted);
        ++event.schema_version;
    }
}

}  // namespace oe
