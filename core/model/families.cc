// The one place a config's model_type picks a model family: adding a family touches this file
// and its own module file, never the trainer, the batcher or the server.
#include "absl/strings/str_cat.h"
#include "core/model/bert.h"
#include "core/model/distilbert.h"
#include "core/model/roberta.h"

namespace berth {

absl::StatusOr<std::shared_ptr<SequenceClassifierModule>> CreateSequenceClassifier(
    const ModelConfig& config) {
  if (config.model_type == "bert") {
    return std::shared_ptr<SequenceClassifierModule>(
        std::make_shared<BertForSequenceClassificationImpl>(config));
  }
  if (config.model_type == "distilbert") {
    return std::shared_ptr<SequenceClassifierModule>(
        std::make_shared<DistilBertForSequenceClassificationImpl>(config));
  }
  if (config.model_type == "xlm-roberta" || config.model_type == "roberta") {
    return std::shared_ptr<SequenceClassifierModule>(
        std::make_shared<RobertaForSequenceClassificationImpl>(config));
  }
  return absl::UnimplementedError(
      absl::StrCat("model_type '", config.model_type,
                   "' is not supported (supported: bert, distilbert, xlm-roberta, roberta)"));
}

}  // namespace berth
