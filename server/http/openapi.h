// The OpenAPI 3 document of Berth's HTTP routes, served at GET /openapi.json.
#ifndef BERTH_SERVER_HTTP_OPENAPI_H_
#define BERTH_SERVER_HTTP_OPENAPI_H_

#include <string>
#include <utility>
#include <vector>

#include "core/util/json.h"

namespace berth::server::http {

// `version` is Berth's.
Json OpenApiDocument(const std::string& version);
// The (METHOD, path template) pairs a document describes.
std::vector<std::pair<std::string, std::string>> DocumentedRoutes(const Json& document);

}  // namespace berth::server::http

#endif  // BERTH_SERVER_HTTP_OPENAPI_H_
