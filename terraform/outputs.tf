output "public_ip" {
  description = "The host's public IPv4 address."
  value       = aws_instance.host.public_ip
}

output "instance_id" {
  description = "The instance id (for `aws ssm start-session --target`)."
  value       = aws_instance.host.id
}

output "ssh" {
  description = "SSH into the host (the setup log is /var/log/embbench-setup.log; /var/lib/embbench/ready appears when it is done)."
  value       = "ssh ubuntu@${aws_instance.host.public_ip}"
}

output "results_home" {
  description = "Bring the newest run home into ./results/ (run from your embbench checkout)."
  value       = "./embbench fetch-results ubuntu@${aws_instance.host.public_ip}   # or: rsync -az ubuntu@${aws_instance.host.public_ip}:embbench/results/<run-id> results/"
}

output "deadline" {
  description = "When the cost guard terminates the host."
  value       = "the host terminates itself ${var.max_hours} h after its first boot; bring results home before then"
}

output "destroy_reminder" {
  description = "What to run when done."
  value       = "when the results are home: terraform destroy"
}
