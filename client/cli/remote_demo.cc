// `berth demo`: the README's end-to-end example against a server.

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/remote_common.h"
#include "client/lib/client.h"
#include "core/util/data_dir.h"
#include "core/util/files.h"

namespace berth::cli {

void AddDemoCommand(CLI::App& app, std::function<int()>* run) {
  // demo
  {
    struct F {
      ServerFlags server;
      std::string base_model = "config:bert-tiny", name = "sst2-demo";
      double epochs = 4;
    };
    auto f = std::make_shared<F>();
    CLI::App* cmd = app.add_subcommand("demo",
                                       "Upload the shipped SST-2 sample, fine-tune a small model "
                                       "on the server, watch it, and classify a few "
                                       "sentences (works offline; with config:bert-tiny the "
                                       "weights start random, so accuracy is modest)");
    cmd->add_option("--base-model", f->base_model,
                    "Base model (e.g. bert-base-uncased or a registered model)")
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
        t.spec.spec.learning_rate =
            5e-4;  // a small model from scratch learns fastest with a high rate
        t.spec.spec.warmup_ratio = 0.1;
        t.watch = true;
        t.print_result = false;  // stdout carries only the classifications
        std::cerr << "berth demo: fine-tuning " << f->base_model << " on " << dir << " as model "
                  << f->name << "\n";
        if (int rc = RunTrain(t); rc != 0) return rc;
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
