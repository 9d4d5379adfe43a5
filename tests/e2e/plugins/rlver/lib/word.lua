-- a module of rlver: the --watch test edits it (a change in a subfolder reloads too)
return { word = "one" }
