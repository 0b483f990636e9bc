"""The board image (``.s2img``): a network as the chip's PEs hold it, and back.

``save_image(net, path)`` maps the network onto PEs (:func:`s2jax.hwmodel.mapping.map_to_cores`)
and writes a versioned little-endian binary: a header, a section table, a network section
(JSON), the ChipSpec (canonical JSON), one section per PE (float32 neuron parameters, 32-bit
synapse words in rows grouped by source neuron, int8 conv kernels, spike_list ticks) and the
routing table. ``load_image(path)`` validates every byte it reads and rebuilds the
:class:`~s2jax.qnet.Network`; running the loaded network gives exactly the original's spikes and
voltages in both profiles. The format is specified in ``docs/image-format.md``.

Writing is atomic (:func:`s2jax.io.atomic_write`: a temporary file in the same folder, synced
to disk, then renamed). No pickle: every array is raw little-endian bytes of a documented dtype.
Every problem raises :class:`ImageError` (a ``ValueError``) naming what is wrong and what was
expected.

Every registered neuron kind (:mod:`s2jax.kinds`) is stored the same way, from what the kind
declares: each parameter is one PE block named after it and typed by its ``param_classes`` entry
("value" and "decay": float32 per neuron; "ticks": uint32 per neuron; "reset": one
:data:`RESET_CODES` code), written reset first, then the float32 blocks, then the tick blocks,
each group in the kind's declared parameter order (:func:`param_blocks` lists them for a model).
A kind added to the registry needs nothing here; its parameter names must fit a block name (1 to
16 printable ASCII characters, none of :data:`RESERVED_BLOCKS`). A spike source kind
(``is_input``) stores its ticks in a "spikes" block. The conv blocks ("conv", "kernels") are on the
PEs of a population that conv projections target, whatever its kind. The stock kinds encode to the
same bytes as before the registry; the one exception is a ``lif_conv2d`` population that no conv
projection targets, whose PEs no longer carry two empty conv blocks (images that have them still
load).

The format's constants are public for tools that read images: the structs :data:`HEADER`,
:data:`ENTRY` and :data:`BLOCK`, the section kinds :data:`NETWORK`, :data:`SPEC`, :data:`PE` and
:data:`ROUTING` (named in :data:`SECTION_NAMES`), the block dtypes (:data:`DTYPES`,
:data:`DTYPE_CODES`), :data:`RESET_CODES`, the parameter classes' dtypes (:data:`PARAM_DTYPES`)
and the order of the conv columns (:data:`CONV_COLUMNS`).
"""

from s2jax.export.image._file import load_image, save_image
from s2jax.export.image._format import (BLOCK, CONV_COLUMNS, DTYPE_CODES, DTYPES, ENTRY, FORMAT_VERSION, HEADER, MAGIC,
                                        NETWORK, PE, RESET_CODES, ROUTING, SECTION_ALIGN, SECTION_NAMES, SPEC,
                                        ImageError, decode_words, encode_words, spec_hash, spec_json)
from s2jax.export.image._params import PARAM_DTYPES, RESERVED_BLOCKS, param_blocks

__all__ = ["FORMAT_VERSION", "ImageError", "MAGIC", "decode_words", "encode_words", "load_image", "save_image",
           "spec_hash", "spec_json", "HEADER", "ENTRY", "BLOCK", "SECTION_ALIGN", "NETWORK", "SPEC", "PE", "ROUTING",
           "SECTION_NAMES", "DTYPES", "DTYPE_CODES", "RESET_CODES", "PARAM_DTYPES", "RESERVED_BLOCKS", "param_blocks",
           "CONV_COLUMNS"]

# The float32 parameter blocks of the stock kinds, by their names before the kinds registry (the
# blocks of any kind: param_blocks(model)).
FLOAT_PARAMS = ("threshold", "alpha_decay", "i_offset", "v_init", "v_reset")
CUBA_FLOAT_PARAMS = ("exc_decay", "inh_decay")
__all__ += ["FLOAT_PARAMS", "CUBA_FLOAT_PARAMS"]
