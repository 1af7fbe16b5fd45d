"""One module per ``traction`` command group; ``traction.cli`` registers them."""
