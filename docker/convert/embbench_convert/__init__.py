"""embbench_convert: turns a model from models.yaml into the folder every embbench server loads.

    python -m embbench_convert convert --model tiny-xlmr --models-file models.yaml --out models/tiny-xlmr
    python -m embbench_convert payloads --model-dir models/tiny-xlmr --seq-lens 32,128,512 --batch-sizes 1,8

The folder layout is described in docker/CONTRACT.md ("Model folder").
"""
