// Must not compile: oe_event_store_sqlite does not link oe_event_store_postgres, so the
// PostgreSQL adapter's headers are invisible here (tests/CMakeLists.txt checks the error).
#include <oe/event_store_postgres/postgres_event_store.hpp>
#include <oe/event_store_sqlite/sqlite_event_store.hpp>

int main() {
    return 0;
}
