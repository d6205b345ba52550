// The one file of berth_server_tests compiled with an absolute path (the berth CLI, which runs
// ranks 1..N-1 of data-parallel jobs), so that ccache reuses every other object across
// checkouts.
namespace berth::testing {
const char* CliBinaryPath() { return BERTH_CLI_BIN; }
}  // namespace berth::testing
