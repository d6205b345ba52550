// `berth models`, `model`, `alias`, `delete-model`, `import-model` and `export-model`.

#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/remote_common.h"
#include "client/lib/client.h"
#include "core/model/pooling_files.h"
#include "core/util/files.h"
#include "core/util/status_macros.h"
#include "core/util/tar.h"
#include "nlohmann/json.hpp"

namespace berth::cli {
namespace {

// The regular files at the top of `dir` (hidden ones left out) and sentence-transformers'
// pooling files (one of them in a folder) as a ustar archive, for `import-model --from DIR`: the
// server keeps the model files among them.
absl::StatusOr<std::string> PackDirectory(const std::string& dir) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir));
  for (const char* name : kPoolingFiles) {
    if (absl::StrContains(name, '/')) names.push_back(name);  // the top-level ones are listed
  }
  std::string tar;
  for (const std::string& name : names) {
    const std::string path = JoinPath(dir, name);
    if (name[0] == '.' || !IsRegularFile(path)) continue;
    if (name.size() >= 100) return absl::InvalidArgumentError(path + ": name too long");
    ASSIGN_OR_RETURN(std::string data, ReadFileToString(path));
    AppendTarMember(&tar, name, data);
  }
  AppendTarEnd(&tar);
  return tar;
}

}  // namespace

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
        // EVALUATION: a classifier's accuracy, a scorer's Pearson correlation.
        std::cout << absl::StrFormat("%-24s %-8s %-20s %-16s %s\n", "NAME", "VERSION", "ALIASES",
                                     "EVALUATION", "BASE");
        for (const v1::ModelVersion& m : resp->models()) {
          std::string aliases;
          for (const std::string& a : m.aliases())
            absl::StrAppend(&aliases, aliases.empty() ? "" : ",", a);
          std::string eval = "-";
          if (m.has_metrics()) {
            eval = m.metrics().scored() ? absl::StrFormat("pearson %.4f", m.metrics().pearson())
                                        : absl::StrFormat("accuracy %.4f", m.metrics().accuracy());
          }
          std::cout << absl::StrFormat("%-24s %-8d %-20s %-16s %s\n", m.name(), m.version(),
                                       aliases.empty() ? "-" : aliases, eval, m.base_model());
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
  {
    struct F {
      ServerFlags server;
      std::string name, from, server_dir;
      bool json = false;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand(
        "import-model",
        "Register an existing Hugging Face classifier as the next version of NAME. --from takes a "
        "local model directory or .tar archive (uploaded), or a Hub id (the server downloads "
        "it); --server-dir a directory on the server under its --model-roots");
    cmd->add_option("name", f->name, "Model name")->required();
    auto* from = cmd->add_option("--from", f->from, "DIR, ARCHIVE.tar or ORG/NAME[@REVISION]");
    auto* server_dir = cmd->add_option("--server-dir", f->server_dir,
                                       "An absolute path on the server, under its --model-roots");
    from->excludes(server_dir);
    cmd->add_flag("--json", f->json, "Print the new version as JSON");
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        if (f->from.empty() == f->server_dir.empty()) {
          std::cerr << "berth import-model: give --from or --server-dir\n";
          return 2;
        }
        v1::ImportModelInfo info;
        info.set_name(f->name);
        std::string archive;
        struct stat st;
        if (!f->server_dir.empty()) {
          info.set_directory(f->server_dir);
        } else if (::stat(f->from.c_str(), &st) == 0) {
          auto bytes = S_ISDIR(st.st_mode) ? PackDirectory(f->from) : ReadFileToString(f->from);
          if (!bytes.ok()) return Fail(bytes.status(), "import-model");
          archive = std::move(*bytes);
          info.set_archive(true);
        } else {
          info.set_hub_id(f->from);
        }
        auto c = Connect(f->server);
        if (c == nullptr) return 1;
        const bool tty = ::isatty(STDERR_FILENO);
        auto r = c->ImportModel(info, archive, [tty](int64_t sent, int64_t total) {
          if (tty)
            std::cerr << "\rberth import-model: " << sent << "/" << total << " bytes" << std::flush;
        });
        if (tty && !archive.empty()) std::cerr << "\n";
        if (!r.ok()) return Fail(r.status(), "import-model");
        if (f->json) {
          std::cout << ToJson(*r, false) << "\n";
        } else {
          std::cout << "imported " << r->name() << ":" << r->version() << " from "
                    << r->imported_from() << "\n";
        }
        return 0;
      };
    });
  }
  {
    struct F {
      ServerFlags server;
      std::string model, output;
      bool json = false;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand(
        "export-model",
        "Download a model version's files (config.json, weights, tokenizer) into a new directory "
        "that transformers' from_pretrained reads");
    cmd->add_option("model", f->model, "NAME, NAME:VERSION or NAME@ALIAS")->required();
    cmd->add_option("--output", f->output, "Directory to create")->required();
    cmd->add_flag("--json", f->json, "Print the files written as JSON");
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        auto c = Connect(f->server);
        if (c == nullptr) return 1;
        const bool tty = ::isatty(STDERR_FILENO);
        auto r = c->ExportModel(f->model, f->output, [tty](int64_t got, int64_t) {
          if (tty) std::cerr << "\rberth export-model: " << got << " bytes" << std::flush;
        });
        if (tty) std::cerr << "\n";
        if (!r.ok()) return Fail(r.status(), "export-model");
        if (f->json) {
          nlohmann::json j = {{"output", f->output}, {"files", *r}};
          std::cout << j.dump() << "\n";
        } else {
          std::cout << "wrote " << r->size() << " files to " << f->output << "\n";
        }
        return 0;
      };
    });
  }
}

}  // namespace berth::cli
