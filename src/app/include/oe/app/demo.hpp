#pragma once

#include <cstddef>

namespace oe::commands {
class CommandService;
}

namespace oe::app {

/// Loads the demo data of `make run` through the commands, so the event log tells the story:
/// two warehouses with SLA tables, partners of every tier in several regions with credit
/// limits, a catalogue of 24 products, and stock in both warehouses. Returns the number of
/// commands applied. Meant for an empty store.
std::size_t load_demo_data(commands::CommandService& service);

}  // namespace oe::app
