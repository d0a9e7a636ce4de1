"""`livermore db`: migrate the schema (Atlas format), show its status, rehash, pull typed models."""
