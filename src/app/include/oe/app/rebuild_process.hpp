#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <oe/projections/rebuild.hpp>

namespace oe::app {

/// A rebuild runner (for projections::RebuildJobs) that runs each rebuild in a process of its
/// own: `<executable> rebuild --beside-server --progress json <name|--all>` against
/// `database_url`. The write model a fold builds (1M events: over a gigabyte) is the child's
/// and goes back to the system when it exits, and a rebuild that crashes cannot take the
/// server with it. It was meant to take the fold's allocations out of checkout's way too;
/// measured, checkout's p99 during a rebuild rose about as much either way (bench/README.md,
/// eighth session). The child reports its status as JSON lines on a pipe; setting `cancel`
/// sends it SIGTERM, which it turns into a cancel before the swap (SIGKILL 10 s later if it is
/// still there). Its stderr (the log) is the server's.
/// `executable`: "/proc/self/exe" runs the very binary that is serving, even after a deploy
/// replaced the file.
[[nodiscard]] projections::RebuildRunner rebuild_in_child_process(std::string executable,
                                                                  std::string database_url);

/// One line `orderengine rebuild --progress json` prints (projections::to_json); nothing when
/// it is not one.
[[nodiscard]] std::optional<projections::RebuildStatus> parse_rebuild_status(std::string_view line);

}  // namespace oe::app
