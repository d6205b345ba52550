// The default of multi-label prediction, in one place: training's evaluation, `berth eval` and
// the inference engine predict a label when its sigmoid is over this (as the Trainer's examples
// and scikit-learn's thresholding do).
#ifndef BERTH_CORE_DATA_MULTI_LABEL_H_
#define BERTH_CORE_DATA_MULTI_LABEL_H_

namespace berth::data {

inline constexpr double kDefaultMultiLabelThreshold = 0.5;

}  // namespace berth::data

#endif  // BERTH_CORE_DATA_MULTI_LABEL_H_
