"""What runs models to score explanations: faithfulness curves by erasure."""
