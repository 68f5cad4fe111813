"""The WPS protocol: parsing requests and rendering documents, free of any execution code."""
