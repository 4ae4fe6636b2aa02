"""The shipped models: find, verify (sha256) and load the graphs; the typed model card;
the ONNX Runtime and Keras back-ends; Grad-CAM; the novelty model."""
