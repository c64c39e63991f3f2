#include <oe/kernel/event.hpp>

#include <set>
#include <stdexcept>

#include <fmt/format.h>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <oe/kernel/json_text.hpp>

namespace oe {

namespace {

void append_field(std::string& out, std::string_view key, const std::string& value) {
    if (out.size() > 1) {
        out.push_back(',');
    }
    append_json_string(out, key);
    out.push_back(':');
    if (value.empty()) {
        out += "null";
    } else {
        append_json_string(out, value);
    }
}

std::string string_field(const boost::json::object& object, std::string_view key) {
    const auto* found = object.if_contains(key);
    if (found == nullptr || found->is_null()) {
        return {};
    }
    if (!found->is_string()) {
        throw std::invalid_argument(fmt::format("metadata field '{}' is not a string", key));
    }
    return std::string(found->get_string());
}

}  // namespace

std::string EventMetadata::to_json() const {
    std::string out = "{";
    append_field(out, "actor", actor);
    append_field(out, "on_behalf_of", on_behalf_of);
    append_field(out, "trace_id", trace_id);
    append_field(out, "correlation_id", correlation_id);
    append_field(out, "causation_id", causation_id);
    append_field(out, "idempotency_key", idempotency_key);
    out.push_back('}');
    return out;
}

EventMetadata EventMetadata::from_json(std::string_view json) {
    boost::system::error_code ec;
    const boost::json::value value = boost::json::parse(json, ec);
    if (ec || !value.is_object()) {
        throw std::invalid_argument("metadata is not a JSON object");
    }
    const auto& object = value.get_object();
    EventMetadata metadata;
    metadata.actor = string_field(object, "actor");
    metadata.on_behalf_of = string_field(object, "on_behalf_of");
    metadata.trace_id = string_field(object, "trace_id");
    metadata.correlation_id = string_field(object, "correlation_id");
    metadata.causation_id = string_field(object, "causation_id");
    metadata.idempotency_key = string_field(object, "idempotency_key");
    return metadata;
}

std::string ExpectedVersion::describe() const {
    if (is_any()) {
        return "any";
    }
    if (value_ == 0) {
        return "no stream";
    }
    return fmt::format("version {}", value_);
}

namespace {

/// Identifiers and metadata are printable UTF-8: no control characters (NUL included), no
/// malformed sequences. Both backends then store and return them byte for byte.
bool is_clean_text(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 || c == 0x7F) {
            return false;
        }
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t length = 0;
        std::uint32_t code = 0;
        if ((c & 0xE0) == 0xC0) {
            length = 2;
            code = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            length = 3;
            code = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            length = 4;
            code = c & 0x07;
        } else {
            return false;
        }
        if (i + length > text.size()) {
            return false;
        }
        for (std::size_t k = 1; k < length; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xC0) != 0x80) {
                return false;
            }
            code = (code << 6) | (next & 0x3F);
        }
        const bool overlong = (length == 2 && code < 0x80) || (length == 3 && code < 0x800) ||
                              (length == 4 && code < 0x10000);
        if (overlong || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
            return false;
        }
        i += length;
    }
    return true;
}

/// An upper bound of EventMetadata::to_json().size() for metadata that passed clean_metadata.
constexpr std::size_t metadata_json_bytes_max = 6 * (2 * limits::metadata_field_bytes_max + 24);

bool clean_metadata(const EventMetadata& m) {
    for (const std::string* field : {&m.actor, &m.on_behalf_of, &m.trace_id, &m.correlation_id,
                                     &m.causation_id, &m.idempotency_key}) {
        if (field->size() > limits::metadata_field_bytes_max || !is_clean_text(*field)) {
            return false;
        }
    }
    return true;
}

}  // namespace

std::optional<AppendError> validate_append(const std::vector<StreamAppend>& streams) {
    auto invalid = [](std::string stream_id, std::string message) {
        AppendError error;
        error.reason = AppendRejected::invalid_event;
        error.stream_id = std::move(stream_id);
        error.message = std::move(message);
        return error;
    };
    if (streams.empty()) {
        return invalid({}, "an append needs at least one stream");
    }
    std::set<std::string_view> seen;
    std::size_t total_events = 0;
    std::size_t total_bytes = 0;
    for (const auto& stream : streams) {
        if (stream.stream_id.empty() || stream.stream_id.size() > limits::stream_id_bytes_max ||
            !is_clean_text(stream.stream_id)) {
            return invalid(stream.stream_id, "stream id must be 1..255 bytes of printable UTF-8");
        }
        if (!seen.insert(stream.stream_id).second) {
            return invalid(stream.stream_id, "a stream may appear only once in an append");
        }
        if (stream.expected.encoded() < -1) {
            return invalid(stream.stream_id, "expected version must be any, no stream or >= 1");
        }
        if (stream.events.empty()) {
            return invalid(stream.stream_id, "each stream in an append needs at least one event");
        }
        total_events += stream.events.size();
        for (const auto& event : stream.events) {
            if (event.type.empty() || event.type.size() > limits::event_type_bytes_max ||
                !is_clean_text(event.type)) {
                return invalid(stream.stream_id,
                               "event type must be 1..128 bytes of printable UTF-8");
            }
            if (!clean_metadata(event.metadata)) {
                return invalid(stream.stream_id,
                               "metadata fields must be at most 255 bytes of printable UTF-8");
            }
            if (event.schema_version < 1) {
                return invalid(stream.stream_id, "schema_version must be >= 1");
            }
            // Metadata fields are clean text of at most 255 bytes each (checked above), so
            // their JSON is at most twice their size plus the keys: no need to build it here.
            const std::size_t payload = event.data.size() + metadata_json_bytes_max;
            total_bytes += payload;
            if (payload > limits::event_payload_bytes_max) {
                AppendError error;
                error.reason = AppendRejected::payload_too_large;
                error.stream_id = stream.stream_id;
                error.message = fmt::format("event {} is {} bytes; the limit is {} bytes",
                                            event.type, payload, limits::event_payload_bytes_max);
                return error;
            }
            if (!is_json_object(event.data)) {
                return invalid(stream.stream_id,
                               fmt::format("data of event {} is not a JSON object", event.type));
            }
        }
    }
    if (total_bytes > limits::append_bytes_max) {
        AppendError error;
        error.reason = AppendRejected::payload_too_large;
        error.message = fmt::format("an append holds at most {} bytes; this one has {}",
                                    limits::append_bytes_max, total_bytes);
        return error;
    }
    if (total_events > limits::append_events_max) {
        return invalid({},
                       fmt::format("an append holds at most {} events", limits::append_events_max));
    }
    return std::nullopt;
}

}  // namespace oe
