"""The benchmark runners: text (LaMP, LongLaMP, Amazon), prefs, memory, rec, dreambench,
concepts, captions. They drive the Engine and the components; nothing below imports them."""
