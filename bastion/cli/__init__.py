"""The command line: thin modules that parse, load config, call the pipeline and print."""
