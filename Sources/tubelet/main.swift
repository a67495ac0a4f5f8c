import ArgumentParser
print("tubelet")
