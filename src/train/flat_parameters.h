// A module's trainable parameters laid end to end in one buffer, each parameter and its
// gradient a view into it. Clipping, AdamW and the EMA then make a few passes over one tensor
// per step instead of ~10 small ops per parameter tensor (about 200 of them in the quick UNet
// and text encoder): on a CPU that per-op overhead was most of the update's time, and on a
// GPU it is one kernel launch each.
//
// The module keeps its Parameter objects; only their storage moves (as PyTorch's FSDP and
// Apex's flat parameters do), so forward, load_module and save_module see no difference.
// Gradients stay views because backward accumulates into a defined .grad in place: the
// buffer is zeroed between steps, never reset to undefined.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/torch_pch.h"
#include "core/weights.h"

namespace recap::train {

class FlatParameters {
 public:
  struct Slot {
    std::string name;  // module path, as in named_parameters()
    int64_t offset = 0;
    int64_t numel = 0;
    std::vector<int64_t> shape;
  };

  // Moves every parameter with requires_grad into the buffer, in named_parameters() order;
  // frozen ones stay where they are. recap::Error when the trainable parameters do not share
  // one floating dtype and device. The module must not be moved to another device afterwards.
  explicit FlatParameters(torch::nn::Module& module);
  FlatParameters(const FlatParameters&) = delete;
  FlatParameters& operator=(const FlatParameters&) = delete;

  const torch::Tensor& values() const { return values_; }  // [numel]
  const torch::Tensor& grads() const { return grads_; }    // [numel]
  const std::vector<Slot>& slots() const { return slots_; }
  int64_t numel() const { return values_.numel(); }

  // A tensor laid out like values() (e.g. an optimizer moment), as one view per parameter,
  // named by module path plus `suffix`. Writing into a view writes into `flat`.
  NamedTensors views(const torch::Tensor& flat, const std::string& suffix = "") const;
  void zero_grad() { grads_.zero_(); }
  // The gradients' global L2 norm.
  double grad_norm() const;

 private:
  torch::Tensor values_, grads_;
  std::vector<Slot> slots_;
};

}  // namespace recap::train
