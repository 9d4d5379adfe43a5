-- A fixture of the test kit's own test: the plugin is fine, its tests are not.
return { name = "kit_syntax", version = "1.0.0" }
