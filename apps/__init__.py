"""Applications composed from the layers below: the worker fleet and the demo round."""
