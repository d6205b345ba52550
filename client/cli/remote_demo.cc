// `berth demo`: the README's end-to-end example against a server.

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/remote_common.h"
#include "client/lib/client.h"
#include "core/model/presets.h"
#include "core/util/data_dir.h"
#include "core/util/files.h"

namespace berth::cli {

void AddDemoCommand(CLI::App& app, std::function<int()>* run) {
  // demo
  {
    struct F {
      ServerFlags server;
      std::string base_model = "sentence-transformers/all-MiniLM-L6-v2", name = "sst2-demo";
      double epochs = 3;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand("demo",
                                       "Upload the shipped SST-2 sample, fine-tune the pretrained "
                                       "all-MiniLM-L6-v2 on the server (offline: scripts/setup.sh "
                                       "puts it in the Hugging Face cache), watch it, print its "
                                       "validation accuracy and classify a few sentences");
    cmd->add_option("--base-model", f->base_model,
                    "Base model (a Hub id, a registered model, or config:bert-tiny for random "
                    "weights and a quick, inaccurate run)")
        ->capture_default_str();
    cmd->add_option("--name", f->name, "Name of the output model")->capture_default_str();
    cmd->add_option("--epochs", f->epochs, "Training epochs")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    AddServerFlags(cmd, &f->server);
    cmd->callback([run, f] {
      *run = [f] {
        TrainFlags t;
        t.server = f->server;
        t.base_model = f->base_model;
        t.name = f->name;
        const std::string dir = JoinPath(BerthDataDir(), "sst2-sample");
        t.train = JoinPath(dir, "train.tsv");
        t.validation = JoinPath(dir, "validation.tsv");
        t.spec.spec.epochs = f->epochs;
        t.spec.spec.max_length = 64;
        t.spec.spec.batch_size = 16;
        // A pretrained model: the Trainer's 5e-5 with a little decay. A small model from
        // scratch (config:NAME) learns fastest with a high rate.
        const bool from_scratch = PresetNameOf(f->base_model).has_value();
        t.spec.spec.learning_rate = from_scratch ? 5e-4 : 5e-5;
        t.spec.spec.weight_decay = from_scratch ? 0.0 : 0.01;
        t.spec.spec.warmup_ratio = 0.1;
        t.watch = true;
        t.print_result = false;  // stdout carries only the classifications
        std::cerr << "berth demo: fine-tuning " << f->base_model << " on " << dir << " as model "
                  << f->name << "\n";
        v1::JobStatus done;
        if (int rc = RunTrain(t, &done); rc != 0) return rc;
        if (done.progress().has_last_eval()) {
          std::cerr << absl::StrFormat(
              "berth demo: validation accuracy %.3f on %s (update %d of %d)\n",
              done.progress().last_eval().accuracy(), t.validation, done.progress().update(),
              done.progress().total_updates());
        }
        ClassifyFlags cf;
        cf.server = f->server;
        cf.model = f->name;
        cf.with_text = true;
        cf.texts = {"a gorgeous, witty, seductive movie.",
                    "the plot is nothing but boilerplate clichés.",
                    "an intelligent and moving film", "it 's a dull , lifeless mess ."};
        std::cerr << "berth demo: classifying " << cf.texts.size() << " sentences with " << f->name
                  << "\n";
        return RunClassify(cf);
      };
    });
  }
}

}  // namespace berth::cli
