// The one precompiled header: everything that touches libtorch includes this.
// Parsing <torch/torch.h> costs ~13 s per translation unit; the PCH pays it once.
#pragma once
#include <torch/torch.h>
