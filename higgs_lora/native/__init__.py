"""Bridge to transformers' native Higgs Audio v2 (transformers >= 5.3): export, import, and the oracle runtime.

boson_multimodal stays the training and inference backend. This package only moves weights and
configs between its layout and the native one, split by job:

- config.py    config fields, both ways
- weights.py   weight names, both ways (no tensor is changed)
- template.py  the processor files: chat template, feature extractor, processor config
- export.py    `higgs-lora export`: model + processor + run settings/provenance
- imports.py   a native folder (today's hub `main`) converted once into the layout boson reads
- runtime.py   where the separately installed transformers >= 5.3 lives (oracle tests only)
"""
