"""DICOM decoding with the display pipeline, resizing with boxes, and the parallel conversion."""
