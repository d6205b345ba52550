// The OpenAPI document (GET /openapi.json) against the router it describes, and its /v1 schemas
// against the berth.v1 messages they come from.
#include "server/http/openapi.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "berth/v1/training.pb.h"
#include "server/http/routes.h"

namespace berth::server::http {
namespace {

TEST(OpenApiTest, DocumentsEveryRouteAndNothingElse) {
  HttpContext ctx{};
  auto routes = MakeRouter(ctx)->Routes();
  // The web console's files (/ui/...) are pages for a browser, not API: the document leaves them
  // out, as it leaves out /metrics.
  routes.erase(std::remove_if(routes.begin(), routes.end(),
                              [](const auto& r) { return r.second.rfind("/ui", 0) == 0; }),
               routes.end());
  EXPECT_EQ(routes.size() + 2, MakeRouter(ctx)->Routes().size());  // /ui and /ui/{path...}
  auto documented = DocumentedRoutes(OpenApiDocument("test"));
  std::sort(routes.begin(), routes.end());
  std::sort(documented.begin(), documented.end());
  EXPECT_EQ(routes, documented);
}

TEST(OpenApiTest, V1SchemasFollowTheProtoJsonMapping) {
  const Json doc = OpenApiDocument("test");
  const Json& schemas = doc["components"]["schemas"];
  const auto* d = v1::JobStatus::descriptor();
  ASSERT_TRUE(schemas.contains(d->full_name()));
  const Json& props = schemas[d->full_name()]["properties"];
  EXPECT_EQ(props.size(), static_cast<size_t>(d->field_count()));
  for (int i = 0; i < d->field_count(); ++i) EXPECT_TRUE(props.contains(d->field(i)->name()));
  // 64-bit integers are decimal strings, enums their names, messages references.
  EXPECT_EQ(props["model_version"]["type"], "string");
  EXPECT_EQ(props["state"]["enum"][1], "JOB_STATE_QUEUED");
  EXPECT_EQ(props["progress"]["$ref"], "#/components/schemas/berth.v1.JobProgress");
  // Every message a schema refers to is there.
  EXPECT_TRUE(schemas.contains("berth.v1.EvalMetrics"));
  EXPECT_TRUE(schemas["berth.v1.UploadDatasetResponse"]["properties"]["label_counts"].contains(
      "additionalProperties"));
}

}  // namespace
}  // namespace berth::server::http
