package main

func bench(args []string) int { return usageErr("bench: not built yet") }
