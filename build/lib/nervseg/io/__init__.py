"""Reading: files and bytes -> grey uint8 arrays, within limits checked before decoding (InputError otherwise).

The contract's names (`nervseg.io.load_image`, `load_mask`, `InputError`) are handed on from
`readers`; `limits`, `pixels` and `dicom` are the pieces it is made of.
"""

from nervseg.io.limits import InputError
from nervseg.io.readers import (
    IMAGE_FORMATS,
    VIDEO_FORMATS,
    Frames,
    ImageData,
    check_pair,
    image_size,
    load_frames,
    load_image,
    load_image_data,
    load_mask,
    sniff_format,
)

__all__ = ["IMAGE_FORMATS", "VIDEO_FORMATS", "Frames", "ImageData", "InputError", "check_pair", "image_size",
           "load_frames", "load_image", "load_image_data", "load_mask", "sniff_format"]
