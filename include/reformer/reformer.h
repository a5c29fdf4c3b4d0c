/* reformer-cl: the umbrella header. */
#ifndef REFORMER_H
#define REFORMER_H

#include "reformer/status.h"
#include "reformer/device.h"
#include "reformer/tensor.h"
#include "reformer/ops.h"
#include "reformer/model.h"
#include "reformer/io.h"

#endif
