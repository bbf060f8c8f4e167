"""CPU int8 dynamic quantization of a causal LM's linear layers.

`quantize_int8` swaps every linear layer but the output embeddings (``lm_head``)
for an int8 one: weights stored as int8 with one scale per output channel,
activations quantized on the fly per call, on the CPU's fbgemm/x86 (or qnnpack)
kernels. GPT-2's ``Conv1D`` layers (a linear layer with its weight transposed) are
turned into ``nn.Linear`` first (`conv1d_to_linear`), so GPT-2 shrinks too.

It uses ``torch.ao.quantization.quantize_dynamic``: eager, in core torch, fast on
CPU. Its successor, torchao's ``quantize_``, is an extra dependency, prints load
errors for its GPU kernels at import, and its int8 layers ran 3-7x slower than
fp32 on CPU without ``torch.compile`` (torch 2.13, torchao 0.18). torch 2.13 marks
``torch.ao.quantization`` and quantized tensors deprecated; the two warnings
that says, to every caller, are silenced around the one call that triggers them.
On GPUs use bitsandbytes instead (see `quantize_int8`).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from llmrouter.errors import ConfigurationError

if TYPE_CHECKING:
    import torch

__all__ = ["conv1d_to_linear", "quantize_int8"]

_BITSANDBYTES = (
    "On a GPU, load the model in 8 bits with bitsandbytes instead (pip install bitsandbytes): "
    "model_kwargs={'quantization_config': BitsAndBytesConfig(load_in_8bit=True)} "
    "(or load_in_4bit=True), with BitsAndBytesConfig from transformers"
)

# Printed by torch 2.13 on every call; the migration they ask for is the library's job.
_DEPRECATIONS = (
    (DeprecationWarning, r"torch\.ao\.quantization is deprecated"),
    (UserWarning, r"torch\.quantize_per_tensor, torch\.quantize_per_channel .* are deprecated"),
)


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Quantize ``model``'s linear layers to int8 for CPU inference, in place.

    Modifies ``model`` itself and returns it (the same object), so a pipeline
    already holding it uses the int8 layers too. In order:

    1. floating-point weights that are not float32 (``torch_dtype=bfloat16`` or
       ``float16``, or ``"auto"`` on such a checkpoint) become float32: the int8
       layers take float32 activations, and the rest (embeddings, norms) computes
       in float32 around them;
    2. GPT-2's ``Conv1D`` layers become ``nn.Linear`` (`conv1d_to_linear`);
    3. every ``nn.Linear`` but the output embeddings is replaced by a dynamically
       quantized one (int8 weights, per-output-channel scales, float32 bias).

    The output embeddings (``model.get_output_embeddings()``, ``lm_head``) stay
    float32, as bitsandbytes leaves them: they are often tied to the input
    embeddings, which stay tied, and the logits keep their precision. Calling it
    again does nothing more. Only inference: the int8 layers have no gradients.

    Raises:
        ConfigurationError: a parameter or buffer is not on the CPU (cuda, mps:
            use bitsandbytes there; meta: the weights were never loaded), or this
            torch has no ``torch.ao.quantization.quantize_dynamic`` any more.

    Examples:
        >>> import torch
        >>> from transformers import GPT2Config, GPT2LMHeadModel
        >>> config = GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100,
        ...                     n_positions=16, bos_token_id=0, eos_token_id=0)
        >>> model = GPT2LMHeadModel(config)
        >>> quantize_int8(model) is model
        True
        >>> model.transformer.h[0].mlp.c_fc
        DynamicQuantizedLinear(in_features=32, out_features=128, dtype=torch.qint8, \
qscheme=torch.per_channel_affine)
        >>> model.lm_head.weight is model.transformer.wte.weight  # still tied, float32
        True
        >>> model(torch.tensor([[5, 6, 7]])).logits.shape
        torch.Size([1, 3, 100])
    """
    import torch
    from torch import nn

    _check_on_cpu(model)
    quantize_dynamic = getattr(torch.ao.quantization, "quantize_dynamic", None)
    if quantize_dynamic is None:
        raise ConfigurationError(
            f"quantize='int8' needs torch.ao.quantization.quantize_dynamic, which torch "
            f"{torch.__version__} no longer has; install a torch that still has it (2.13 "
            f"does), or drop quantize='int8'"
        )
    tensors = (*model.parameters(), *model.buffers())
    if any(t.is_floating_point() and t.dtype != torch.float32 for t in tensors):
        model.float()
    conv1d_to_linear(model)
    output = _output_embeddings(model)
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    names = {
        name: qconfig
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module is not output
    }
    if names:
        with warnings.catch_warnings():
            for category, message in _DEPRECATIONS:
                warnings.filterwarnings("ignore", message=message, category=category)
            quantize_dynamic(model, names, dtype=torch.qint8, inplace=True)
    return model


def conv1d_to_linear(model: torch.nn.Module) -> int:
    """Replace ``model``'s ``transformers`` ``Conv1D`` submodules by ``nn.Linear``, in place.

    A ``Conv1D(nf, nx)`` computes ``x @ weight + bias`` with a weight of shape
    ``(nx, nf)``; the ``nn.Linear(nx, nf)`` that replaces it takes the transposed
    view of that same weight (no copy) and the same bias, so it computes exactly
    the same thing. GPT-2 (and OpenAI GPT) use ``Conv1D``; other models have none.
    The converted model's state dict no longer loads as the original architecture:
    this is a step towards quantization, not a format to save. Returns how many
    layers were replaced.

    Examples:
        >>> import torch
        >>> from transformers.pytorch_utils import Conv1D
        >>> model = torch.nn.Sequential(Conv1D(3, 4), torch.nn.ReLU())
        >>> x = torch.randn(2, 4)
        >>> before = model(x)
        >>> conv1d_to_linear(model), model[0]
        (1, Linear(in_features=4, out_features=3, bias=True))
        >>> torch.equal(model(x), before)
        True
    """
    from transformers.pytorch_utils import Conv1D

    replaced: dict[int, torch.nn.Linear] = {}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                if id(child) not in replaced:  # a layer shared by two parents stays shared
                    replaced[id(child)] = _as_linear(child)
                setattr(parent, name, replaced[id(child)])
    return len(replaced)


def _as_linear(conv: torch.nn.Module) -> torch.nn.Linear:
    from torch import nn

    weight, bias = conv.weight, conv.bias
    assert isinstance(weight, nn.Parameter) and isinstance(bias, nn.Parameter)
    linear = nn.Linear(weight.shape[0], weight.shape[1], device="meta")  # no init, no memory
    linear.weight = nn.Parameter(weight.detach().t(), requires_grad=weight.requires_grad)
    linear.bias = bias
    linear.train(conv.training)
    return linear


def _output_embeddings(model: torch.nn.Module) -> torch.nn.Module | None:
    import torch

    get = getattr(model, "get_output_embeddings", None)
    output = get() if callable(get) else None
    return output if isinstance(output, torch.nn.Module) else None


def _check_on_cpu(model: torch.nn.Module) -> None:
    devices = {t.device.type for t in (*model.parameters(), *model.buffers())}
    elsewhere = sorted(devices - {"cpu"})
    if not elsewhere:
        return
    if elsewhere == ["meta"]:
        raise ConfigurationError(
            "quantize='int8' needs the model's weights loaded on the CPU, but some are on "
            "the meta device (not loaded: e.g. device_map offloaded them to disk). Load the "
            "model fully on the CPU (device=-1 or device_map='cpu', no offloading)."
        )
    raise ConfigurationError(
        f"quantize='int8' is int8 dynamic quantization for the CPU, but the model has "
        f"weights on {', '.join(elsewhere)}. Load it on the CPU (device=-1 or "
        f"device_map='cpu'), or drop quantize='int8'. {_BITSANDBYTES}."
    )
