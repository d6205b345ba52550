// Berth's training defaults against the Hugging Face Trainer's: every TrainingArguments default
// in tests/data/fixtures/trainer-defaults.json (written and checked against the pinned
// transformers by tests/reference/trainer_defaults.py) must equal what a default TrainingSpec
// does, unless it is one of the deliberate differences below, each with its reason
// (docs/training.md lists the same under "Training defaults").
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/train/trainer.h"
#include "core/util/json.h"
#include "tests/unit/test_util.h"

namespace berth {
namespace {

// A default TrainingSpec in the Trainer's terms: the value TrainingArguments would need for the
// Trainer to do what Berth does.
Json BerthInTrainerTerms(const data::TrainingSpec& s) {
  return {
      {"learning_rate", s.learning_rate},
      {"adam_beta1", s.adam_beta1},
      {"adam_beta2", s.adam_beta2},
      {"adam_epsilon", s.adam_epsilon},
      {"weight_decay", s.weight_decay},
      {"max_grad_norm", s.max_grad_norm},
      {"num_train_epochs", s.epochs},
      {"max_steps", s.max_steps > 0 ? s.max_steps : -1},  // both: "train for num_train_epochs"
      // HF's warmup_steps is steps when >= 1, a ratio of all steps when < 1.
      {"warmup_steps", s.warmup_steps > 0 ? static_cast<double>(s.warmup_steps) : s.warmup_ratio},
      {"lr_scheduler_type", "linear"},  // LrLambda in trainer.cc is Berth's only schedule
      {"label_smoothing_factor", s.label_smoothing},
      {"seed", s.seed},
      {"data_seed",
       nullptr},  // Berth shuffles with `seed`, as the Trainer does when data_seed is None
      {"per_device_train_batch_size", s.batch_size},
      {"per_device_eval_batch_size", s.eval_batch_size},
      {"gradient_accumulation_steps", s.grad_accum},
      {"train_sampling_strategy", !s.shuffle          ? "sequential"
                                  : s.group_by_length ? "group_by_length"
                                                      : "random"},
      // With a validation set Berth evaluates every epoch (eval_steps 0) or every eval_steps.
      {"eval_strategy", s.eval_steps > 0 ? "steps" : "epoch"},
      {"save_strategy", s.save_steps > 0 ? "steps" : "epoch"},
      {"save_steps", s.save_steps},
      {"load_best_model_at_end", true},  // the saved model is the best evaluation's (trainer.cc)
      {"metric_for_best_model", s.metric_for_best.empty() ? "accuracy" : s.metric_for_best},
      {"dataloader_drop_last", false},  // Berth never drops a partial batch
      {"bf16", s.precision == data::Precision::kBf16},
      {"fp16", false},
      {"optim", "adamw_torch_fused"},  // AdamWStep runs torch's _fused_adamw_
  };
}

// Deliberate differences and why. All four concern a run with a validation set: a service job
// must pick its model and survive a restart without the user spelling out a strategy.
const std::map<std::string, std::string>& Deliberate() {
  static const auto* m = new std::map<std::string, std::string>{
      {"eval_strategy",
       "a validation set given is evaluated every epoch (the Trainer needs eval_strategy set)"},
      {"save_strategy",
       "a checkpoint at every evaluation and epoch end, so a job resumes after a restart"},
      {"save_steps", "0 means at every evaluation and epoch end (save_strategy above)"},
      {"load_best_model_at_end",
       "the saved model is the best evaluation's, as users of a service expect"},
      {"metric_for_best_model", "accuracy (micro_f1 for multi-label) picks it, not the eval loss"},
  };
  return *m;
}

TEST(TrainerDefaults, EqualTheTrainersExceptTheListedOnes) {
  auto fixture = ReadJsonFile(testing::DataPath("fixtures/trainer-defaults.json"));
  ASSERT_TRUE(fixture.ok()) << fixture.status();
  const Json& hf = fixture->at("defaults");
  const Json berth = BerthInTrainerTerms(data::TrainingSpec{});
  for (auto it = hf.begin(); it != hf.end(); ++it) {
    SCOPED_TRACE(it.key());
    ASSERT_TRUE(berth.contains(it.key()))
        << "no Berth counterpart for TrainingArguments." << it.key();
    const Json& b = berth.at(it.key());
    const bool same = it.value().is_number() && b.is_number()
                          ? it.value().get<double>() == b.get<double>()
                          : it.value() == b;
    if (Deliberate().count(it.key())) {
      EXPECT_FALSE(same)
          << "listed as a deliberate difference but equal to the Trainer's: drop it from the list";
    } else {
      EXPECT_TRUE(same) << "the Trainer's default is " << it.value().dump() << ", Berth's "
                        << b.dump() << " (transformers "
                        << fixture->at("transformers").get<std::string>() << ")";
    }
  }
  for (const auto& [field, why] : Deliberate())
    EXPECT_TRUE(hf.contains(field)) << field << " is not checked";
}

}  // namespace
}  // namespace berth
