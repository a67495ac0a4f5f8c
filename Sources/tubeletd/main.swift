print("tubeletd")
