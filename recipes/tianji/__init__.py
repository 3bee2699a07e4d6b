"""天机 (Tianji): greetings for relatives and colleagues × occasions × styles."""
