-- the SDK has a module of this name too: the plugin's own comes first
return { from = "plugin" }
