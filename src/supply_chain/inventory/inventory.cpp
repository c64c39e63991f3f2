// The stock rules are small enough to live in the header; this file anchors the module's
// library target.
#include <oe/inventory/inventory.hpp>
