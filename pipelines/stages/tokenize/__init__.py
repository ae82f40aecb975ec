"""The tokenize and train-tokenizer stages: clean_docs into tokens; the encoder in `encoder.py`, its config in
`config.py`, offline BPE training in `train.py`, Spark glue in `spark.py`."""
