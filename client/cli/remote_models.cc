// `berth models`, `model`, `alias` and `delete-model`.

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/remote_common.h"
#include "client/lib/client.h"
#include "nlohmann/json.hpp"

namespace berth::cli {

void AddModelCommands(CLI::App& app, std::function<int()>* run) {
  // models / model / alias / delete-model
  {
    struct F {
      ServerFlags server;
      bool json = false;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand("models", "List model versions on the server");
    cmd->add_flag("--json", f->json, "Print the response as JSON");
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        auto c = Connect(f->server);
        if (c == nullptr) return 1;
        auto resp = c->ListModels();
        if (!resp.ok()) return Fail(resp.status(), "models");
        if (f->json) {
          std::cout << ToJson(*resp, false) << "\n";
          return 0;
        }
        std::cout << absl::StrFormat("%-24s %-8s %-20s %-10s %s\n", "NAME", "VERSION", "ALIASES",
                                     "ACCURACY", "BASE");
        for (const v1::ModelVersion& m : resp->models()) {
          std::string aliases;
          for (const std::string& a : m.aliases())
            absl::StrAppend(&aliases, aliases.empty() ? "" : ",", a);
          std::cout << absl::StrFormat(
              "%-24s %-8d %-20s %-10s %s\n", m.name(), m.version(), aliases.empty() ? "-" : aliases,
              m.has_metrics() ? absl::StrFormat("%.4f", m.metrics().accuracy()) : "-",
              m.base_model());
        }
        return 0;
      };
    });
  }
  {
    struct F {
      ServerFlags server;
      std::string model;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd =
        app.add_subcommand("model", "Print one model version (labels, metrics, config) as JSON");
    cmd->add_option("model", f->model, "NAME, NAME:VERSION or NAME@ALIAS")->required();
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        auto c = Connect(f->server);
        if (c == nullptr) return 1;
        auto m = c->GetModel(f->model);
        if (!m.ok()) return Fail(m.status(), "model");
        std::cout << ToJson(*m, true) << "\n";
        return 0;
      };
    });
  }
  {
    struct F {
      ServerFlags server;
      std::string name, alias;
      int64_t version = 0;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd =
        app.add_subcommand("alias", "Point an alias (e.g. production) at a model version");
    cmd->add_option("name", f->name, "Model name")->required();
    cmd->add_option("alias", f->alias, "Alias")->required();
    cmd->add_option("version", f->version, "Version")->required()->check(CLI::PositiveNumber);
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        auto c = Connect(f->server);
        if (c == nullptr) return 1;
        auto r = c->SetAlias(f->name, f->alias, f->version);
        if (!r.ok()) return Fail(r.status(), "alias");
        std::cout << ToJson(*r, false) << "\n";
        return 0;
      };
    });
  }
  {
    struct F {
      ServerFlags server;
      std::string name;
      int64_t version = 0;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand("delete-model",
                                       "Delete a model version (or all versions) and its files; "
                                       "refused while a job uses it as its base");
    cmd->add_option("name", f->name, "Model name")->required();
    cmd->add_option("--version", f->version, "Only this version (default: every version)")
        ->check(CLI::NonNegativeNumber);
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        auto c = Connect(f->server);
        if (c == nullptr) return 1;
        auto r = c->DeleteModel(f->name, f->version);
        if (!r.ok()) return Fail(r.status(), "delete-model");
        std::cout << ToJson(*r, false) << "\n";
        return 0;
      };
    });
  }
}

}  // namespace berth::cli
