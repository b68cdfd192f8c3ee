"""The services behind the Engine: generation (every modality), training (runners),
deletion, conversation memory, uploads and the user-data verbs."""
