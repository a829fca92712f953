"""The standard evaluation of a trained model (`codecgan test`): per-utterance scores and the report."""
