"""Fine-tune backends behind one interface, and the tracker that follows their jobs."""
