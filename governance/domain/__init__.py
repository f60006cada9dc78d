"""The pure core: policy schema, check results and the verdict. No I/O, no frameworks."""
