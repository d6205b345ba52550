// The web console's files (server/ui/ and Debian's Chart.js), built into the server by
// cmake/EmbedUi.cmake.
#ifndef BERTH_SERVER_HTTP_UI_ASSETS_H_
#define BERTH_SERVER_HTTP_UI_ASSETS_H_

#include <cstddef>
#include <vector>

namespace berth::server::http {

struct UiAsset {
  const char* path;  // under /ui/, e.g. "index.html", "vendor/chart.umd.min.js"
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

const std::vector<UiAsset>& UiAssets();

}  // namespace berth::server::http

#endif  // BERTH_SERVER_HTTP_UI_ASSETS_H_
